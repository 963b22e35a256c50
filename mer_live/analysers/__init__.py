"""Analysers that read the same cleaned audio as the model and publish events and values:
beat and tempo (``beat``), the beat follower the clock outputs share (``beatfollow``), bars
(``bars``) and song sections (``sections``)."""
