"""The foundation every layer uses: errors and exit codes, names, URLs and secrets, templates, tokens, verdict labels."""
