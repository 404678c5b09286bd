"""One module per PSP behind one small interface; the core never branches on a PSP's name."""
