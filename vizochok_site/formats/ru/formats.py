"""Russian: a day of a month in the genitive ("7 декабря"), as Ukrainian (``vizochok_site.formats.uk``)."""

MONTH_DAY_FORMAT = "j E"
