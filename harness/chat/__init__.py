"""The REPL's session and commands, with no terminal code (harness.repl draws them).

    session.py        Session: its parts and generate, the one orchestrator of a turn
    engine_handle.py  the workbench and switching model, template, variables, literal content
    tree.py           the immutable conversation tree        tree_history.py  the tree with undo/redo
    transcript.py     every generated turn, the inspected one, the adoptable one
    turn_settings.py  the frozen settings of every turn       prefs.py         a front end's switches
    session_io.py     the turn log and autosave               saved.py         session files, exports
    session_check.py  what a session file must hold before it is restored
    events.py         what a session tells its display
    slash.py          the command registry: names, usage, help; the line parser
    registry.py       CommandTable: handlers by name          dispatch.py      a line -> its handler
    commands/         the handlers by topic (general, turns, edit, inspect, files, configure)
"""
