"""Analysers that read the same cleaned audio as the model and publish events and values:
beat and tempo (``beat``), bars (``bars``) and song sections (``sections``), each registered at the
end of its file (``mer_live.registry``: config section, flags, event kinds, values); the beat
follower the clock outputs share (``beatfollow``). A new analyser is one new file here."""
