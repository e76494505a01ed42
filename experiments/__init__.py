"""confide.experiments"""
