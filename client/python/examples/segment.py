import numpy, segserve                                # pip install ./client/python
client = segserve.Client()                            # $SEGSERVE_ADDR (localhost:50051), $SEGSERVE_TOKEN
image = numpy.random.default_rng(7).integers(0, 256, (256, 256, 3), numpy.uint8)  # or "smear.png"
mask = client.segment(image, model="l1-pruned")       # numpy uint8 (256, 256), pixel = class id
print(mask.shape, numpy.bincount(mask.ravel()))       # pixels per class
