"""Historical validation: replay the 2010-2014 export-quota crisis and compare the
simulated prices with the observed ones (``ree validate``), and the small search that
calibrated the uncertain parameters on it (``ree calibrate``)."""
