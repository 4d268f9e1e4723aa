"""Test SMKI, GBCS signatures and MACs, XML-DSig."""
