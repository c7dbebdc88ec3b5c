"""hetreg.experiments"""
