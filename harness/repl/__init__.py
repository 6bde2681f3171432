"""The interactive REPL (the only package that imports prompt_toolkit).

    chat.py        `harness chat`: open, resume, autosave, run
    app.py         the prompt loop and key bindings       prefs.py     its switches (shade, multiline, vi)
    display.py     events drawn on the terminal           toolbar.py   the bottom toolbar
    completer.py   Tab completion                         history.py   input history on disk
    typeahead.py   keys typed while the model streams
"""
