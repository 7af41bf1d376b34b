//! capscope's certificate authority (being built).
