"""The battles browser (qa_browser.py): its data queries and its Gradio interface."""
