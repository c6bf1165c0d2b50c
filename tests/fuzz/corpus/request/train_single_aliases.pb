
tinyzm1‚prod‚staging