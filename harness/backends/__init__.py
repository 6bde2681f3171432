"""Engines: a model in this process (llama_cpp), servers (llama-server, OpenAI-compatible), and a fake for tests. Tokens in, logits or top-k out; nothing here knows templates or workbenches."""
