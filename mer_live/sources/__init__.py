"""Where audio comes from: the live input device (``capture``), a file paced in real time
(``filesource``) and the bundled demo (``demo``). Each fills a ``live.ringbuffer.RingBuffer``."""
