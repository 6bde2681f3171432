"""The pure core of prompts: conversations, chat templates and what they render to.

    conversation.py   messages and conversations as immutable values; the messages-file format
    templates.py      where a template comes from (library, user folder, GGUF, path); rendering
    sandbox.py        the sandboxed Jinja environment, as apply_chat_template sets it up
    render_worker.py  the limited process every template renders in
    mode_names.py     the prompt modes (importable without Jinja, for --help)
    modes.py          conversation + mode -> the exact prompt, its segments, who writes next
    segments.py       which characters are message content and which are scaffolding
    markers.py        turn markers derived by rendering probe conversations
    blocks.py         thinking and tool-call delimiters inside an assistant turn
    turns.py          generated text -> turns, by the derived markers
    attribution.py    character spans -> token roles
    response.py       generated assistant text -> reasoning, content and tool calls
    roundtrip.py      a generated turn -> the message that re-renders as the model wrote it
"""
