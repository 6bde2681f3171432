"""Engines: tokens in, logits or top-k out; nothing here knows templates or workbenches.

    base.py           the Backend and MultiSequenceBackend protocols, ModelInfo, EngineOptions, DecodePath
    llama_cpp.py      llama.cpp in this process (the only module that imports llama_cpp), on a
                      batch-invariant decode path by default
    invariance.py     measures whether a backend gives a row the same logits whatever the decode
    llama_build.py    the llama.cpp build for this CPU: instruction sets it advertises and the OS
                      grants (XCR0, AMX permission) -> CMAKE_ARGS (used by ./dev; no llama_cpp)
    fake.py           a small deterministic backend for fast tests
    remote.py         the RemoteEngine protocol          servers.py  --backend URLs, detection
    llama_server.py   llama-server's native API           openai_compat.py  /v1/completions servers
    http.py           JSON and server-sent events over HTTP (stdlib only)
    server_values.py  what a server's logprobs, ranks and token ids must be before they count
"""
