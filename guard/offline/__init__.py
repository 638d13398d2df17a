"""Offline tools over recordings and policies: replay, query and the policies' embedded tests."""
