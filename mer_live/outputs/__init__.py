"""Where the estimates go: OSC, sACN/Art-Net lighting, MIDI, Ableton Link, the record file and
the terminal printer. Each is a sink fed by the pipeline; each (but the terminal printer, which the
CLI makes when headless) registers itself at the end of its file (``mer_live.registry``): its
config section, flags, factory and start-up line. A new output is one new file here."""
