"""hetreg.metrics"""
