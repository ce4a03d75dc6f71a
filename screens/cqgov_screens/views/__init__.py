"""Screens of the console: command centre, event detail, compose, receipts, help, prompts."""
