"""The analysis side: reads results the driver wrote (pandas, scipy, matplotlib); never runs a framework."""
