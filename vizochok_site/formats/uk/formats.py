"""Ukrainian date formats Django gets wrong: a day of a month is "7 грудня" (the genitive, ``E``), not "07 Грудень".

Only what differs from ``django.conf.locale.uk.formats`` is here; Django reads the rest from its own module.
"""

MONTH_DAY_FORMAT = "j E"
