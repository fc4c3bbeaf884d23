"""Serving a registered version with capture (`govtrain serve`): the HTTP side of the production loop."""
