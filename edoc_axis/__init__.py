"""edoc_axis: a node of Vietnam's national e-document interchange axis (edXML, QCVN 102:2016)."""

__version__ = "0.1.0"
