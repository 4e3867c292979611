"""Answering: a candidate model's reply to each question of a bench, as answer records."""
