"""hetreg.cli"""
