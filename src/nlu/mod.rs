//! Natural-language understanding: sentence embeddings (`minilm`), the intent router, slot
//! extraction, sentiment and knowledge-base retrieval.

pub mod minilm;
