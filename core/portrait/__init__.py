"""The portrait path: plates of people who never sat in a light stage (automatic mattes, face
landmarks). MediaPipe (its models ship inside its wheel) is imported lazily, never downloaded."""
