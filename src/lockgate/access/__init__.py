"""Access: who acts (identities bound to the App), API tokens and their roles, web console
sessions, and who may decide on a waiting step."""
