"""The RAG app's client side: ask Llama Stack a question over the ingested corpus."""
