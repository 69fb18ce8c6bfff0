"""Access: API tokens and their roles, and web console sessions."""
