"""What shoppers see: rendering of fragments and items, formatting of prices and quantities, markdown, images, texts."""
