"""confide.federation"""
