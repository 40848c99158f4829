"""What every flow is built with: the engine, LINE message and Flex builders, postback data, diagrams."""
