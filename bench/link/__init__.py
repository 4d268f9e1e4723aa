"""Transports that move HAN frames: serial URLs, pseudo-terminals, USB radios, pacing, faults."""
