"""OPC UA interoperability matrix: scenarios run for every client stack x server stack pair."""
