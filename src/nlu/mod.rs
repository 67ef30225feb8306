//! Natural-language understanding: sentence embeddings (`minilm`), lexical features
//! (`lexical`), the intent router (`intent`), slot extraction (`slots`, `dates`), sentiment
//! (`sentiment`) and knowledge-base retrieval (`kb`).

pub mod dates;
pub mod intent;
pub mod kb;
pub mod lexical;
pub mod minilm;
pub mod sentiment;
pub mod slots;
