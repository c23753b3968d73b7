"""Video evidence on the camera: the RAM-only pre-roll and the clip around each alert, the
optional sealed CCTV recording, and getting both to the hub as sealed, chunked transfers."""
