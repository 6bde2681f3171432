"""The template lab: what a template is and does, without generating (no printing, no argparse).

    lint.py        the probe battery and its findings (L0xx)      findings.py  a finding
    audit.py       the static pass (L1xx) and the capability report
    diffing.py     character and token differences                against.py   a server's rendering
    fit.py         ranking templates by the bits of the whole conversation
    show.py        a prompt as the model sees it, for a terminal
    importers.py   SillyTavern, text-generation-webui and tokenizer_config.json templates
"""
