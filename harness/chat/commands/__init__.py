"""The REPL's slash commands by topic, each module registering its handlers in its own table
(harness.chat.registry); harness.chat.slash holds their names, usage and help.

    general     /help /new /quit
    turns       /reply /impersonate /prefill /continue /adopt /retry /swipe
    edit        /messages /show /edit /delete /role /insert /undo /redo
    inspect     /tokens /alts /branch /raw /entropy
    files       /save /load /export /sessions
    configure   /set /eos /bias /template /model /system /profile /shade
"""
