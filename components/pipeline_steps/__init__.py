"""Kubeflow Pipelines components: thin wrappers around the project's logic, one module per stage.

Every stage module imports only kfp and the standard library at the top; the logic (and its
heavy imports) is loaded inside the component body. ``component(image)`` in each module builds
the KFP component for a base image, so the image is chosen by the compile entrypoint.
"""
