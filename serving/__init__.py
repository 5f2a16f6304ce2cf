"""Serving the projects' exports: a TF-Serving-compatible embedded server, a Flask middleware, clients.

Imports no project: everything here knows exported SavedModels only (see serving/README.md).
"""
