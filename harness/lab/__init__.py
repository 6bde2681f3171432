"""The template lab: what a template is and does, without generating (no printing, no argparse).

    lint/          the rules table, the static pass (L1xx, constant folding), the probe battery
                   (L0xx), tokenizer rules (L2xx), folders and models, suppressions, text/JSON/SARIF
    audit.py       the capability report and the date probes
    diffing.py     character and token differences                against.py   a server's rendering
    fit.py         ranking templates by the bits of the whole conversation
    show.py        a prompt as the model sees it, for a terminal
    importers.py   SillyTavern, text-generation-webui and tokenizer_config.json templates
"""
