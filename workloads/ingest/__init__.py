"""RAG ingestion: Docling → chunks → embeddings → Milvus (Lite locally, a server in the cluster)."""
