"""confide.core"""
