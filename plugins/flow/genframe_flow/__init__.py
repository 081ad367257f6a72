"""genframe-flow: conditional flow matching for genframe (a U-Net velocity net, ODE samplers)."""
