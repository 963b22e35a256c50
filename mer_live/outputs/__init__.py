"""Where the estimates go: OSC, sACN/Art-Net lighting, MIDI, Ableton Link, the record file and
the terminal printer. Each is a sink fed by the pipeline."""
