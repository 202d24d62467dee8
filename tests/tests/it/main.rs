//! Cross-process tests: every module starts real AiSQL processes through the harness in
//! `aisql_tests` (one cluster per module) and stops them by PID.
//! Numbered from simple to complex.

mod t01_flags;
mod t02_single_node;
mod t03_three_nodes;
mod t04_bedis;
mod t05_aisql_start;
mod t06_bsql;
mod t07_web;
mod t08_bcql;
mod t09_txn;
mod t10_fuzz;
