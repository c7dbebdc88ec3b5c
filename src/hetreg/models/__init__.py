"""hetreg.models"""
