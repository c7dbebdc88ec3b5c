"""hetreg.noise"""
