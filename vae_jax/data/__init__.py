"""Datasets: by name (`datasets`), from image folders, arrays and tensorflow-datasets, image
operations (crop, resize, channels), and streaming the training images to the devices."""
