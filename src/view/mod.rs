//! What the models look like to a person and in files, one layer under
//! `commands/` and above every model (`report`, `sizing`, `compare`):
//! the terminal views, one file per command (`term/`), and the file
//! formats behind one `Exporter` trait, with the writing of a results
//! directory (`export/`, HTML pages in `export/html/`). Each view is a pure
//! function of its model; the commands print or write it.

pub mod export;
pub mod term;
