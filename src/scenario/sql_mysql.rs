//! MySQL's `?` placeholders, found as MySQL's lexer finds them: the lexer
//! lives with the MySQL backend (`backend::mysql::placeholders`), whose
//! text protocol puts the values in their place; the checker counts them
//! against a statement's params without a server.

pub use crate::backend::mysql::question_marks;
