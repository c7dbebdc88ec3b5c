"""hetreg.train"""
