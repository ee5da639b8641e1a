"""Local development server: API Gateway emulator and Twilio sandbox."""
